//! What the host does with the folder (broken files skipped, duplicate names refused), and the real
//! binary: its start-up, its log, and calls that go on whatever happens to the log.

use std::time::{Duration, Instant};

use sse_wasm::wasm::Limits;

use crate::util::{Binary, TestServer, bundles, call, eventually, function_names, guest_wasm, numbers};

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
    let entry = registry.get(sse_wasm::functions::registry::function_id("SumOfRows")).expect("served");
    assert!(entry.guest().expect("wasm").path.ends_with("a.wasm"), "the first file by name keeps it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_clean() {
    let server = TestServer::start(&["column_operations"]).await;
    let mut client = server.client().await;
    call(&mut client, "SumOfColumn", bundles(numbers(&[1.0]), 1)).await.expect("call");
    server.stop().await.expect("serve returns Ok after shutdown");
}

/// Every call logs a line. A log destination that stops taking lines (a paused terminal, a pipe
/// nobody reads) holds up no call: the calls go on while the pipe is full, and the lines they
/// logged all arrive, in order, once it is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_while_the_log_destination_takes_nothing() {
    let root = tempfile::tempdir().expect("temp dir");
    let args = ["--no-watch", "--cache-dir", "cache", "--cache-key", "keys/cache.key"];
    let mut binary = Binary::start_unread(root.path(), &["column_operations"], &args, "info").await;
    let mut client = binary.client().await;
    // A pipe holds 64 KiB: about 400 of these lines. Ten times that many calls, none read.
    const CALLS: usize = 4000;
    for i in 0..CALLS {
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            call(&mut client, "SumOfColumn", bundles(numbers(&[i as f64]), 1)),
        )
        .await
        .unwrap_or_else(|_| panic!("call {i} is answered although nobody reads the log"))
        .expect("call");
        assert_eq!(answer.numbers(), [i as f64]);
    }
    binary.read_log();
    let log = binary.log();
    let done = || log().iter().filter(|l| l.contains("call done")).count();
    eventually("every call's line arrives", || async { done() == CALLS }).await;
    let lines = log();
    assert!(lines.iter().all(|l| !l.contains("dropped")), "nothing was dropped: 4000 lines fit the buffer");
    let first = lines.iter().position(|l| l.contains("call done")).expect("a call line");
    assert!(
        lines[..first].iter().any(|l| l.contains("listening on")),
        "the start-up lines come first: {:#?}",
        &lines[..first]
    );
    binary.child.kill().await.expect("kill");
}

/// The real binary, started as `make run` starts it (a relative functions folder): a clean start
/// logs no error, and events for files it has loaded (its own reads, a `chmod`) reload nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_start_logs_no_errors_and_touching_loaded_files_reloads_nothing() {
    let root = tempfile::tempdir().expect("temp dir");
    let args = ["--cache-dir", "cache", "--cache-key", "keys/cache.key", "--metrics-listen", "127.0.0.1:0"];
    let mut binary = Binary::start(root.path(), &["column_operations", "stats"], &args, "debug").await;
    let (port, functions) = (binary.port, binary.functions.clone());
    let lines = binary.log();
    let log = || lines().join("\n");

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
    // --metrics-listen serves the metrics where the log says.
    eventually("the metrics address is logged", || async { log().contains("metrics at http://") }).await;
    let metrics_at = log()
        .lines()
        .find_map(|l| Some(l.split_once("metrics at http://")?.1.split_once("/metrics")?.0.to_owned()))
        .expect("the metrics address is logged");
    let (status, scrape) = crate::metrics::get(metrics_at.parse().expect("an address"), "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(crate::metrics::sample(&scrape, "sse_wasm_functions"), Some(8.0), "{scrape}");
    for guest in ["column_operations", "stats"] {
        let path = functions.join(format!("{guest}.wasm"));
        let permissions = std::fs::metadata(&path).expect("meta").permissions();
        std::fs::set_permissions(&path, permissions).expect("chmod");
    }
    eventually("both touches are seen and judged unchanged", || async {
        log().matches("touched but unchanged").count() >= 2
    })
    .await;
    binary.child.kill().await.expect("kill");
    let log = log();
    assert!(!log.contains("ERROR") && !log.contains("refused"), "a clean start logs no errors:\n{log}");
    assert!(!log.contains("reloaded"), "nothing was reloaded:\n{log}");
}

/// A first start that says what it is doing: the port opens at once with health NOT_SERVING,
/// each component is logged when its load starts and ends (small ones first, not kept behind a
/// large compile), GetCapabilities sent during the load waits and answers the whole list, and
/// health turns SERVING once everything is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_opens_the_port_at_once_and_answers_only_the_whole_list() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;

    let root = tempfile::tempdir().expect("temp dir");
    // A cold start: everything compiles. A generous stall timeout bounds how long calls wait.
    let args = ["--no-compile-cache", "--no-watch", "--stall-timeout", "600"];
    let mut binary = Binary::start(root.path(), &["python_example", "column_operations"], &args, "info").await;
    let (port, functions) = (binary.port, binary.functions.clone());
    let log = binary.log();
    let position = |needle: &str| log().iter().position(|line| line.contains(needle));

    let uri = format!("http://127.0.0.1:{port}");
    // The first answer of the health service, however long the port takes to open.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_status = loop {
        assert!(Instant::now() < deadline, "the port opens within 30 s: {:#?}", log());
        if let Ok(channel) = tonic::transport::Channel::from_shared(uri.clone()).expect("uri").connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            if let Ok(status) = health.check(HealthCheckRequest { service: String::new() }).await {
                break Some(status.into_inner().status());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(
        first_status,
        Some(ServingStatus::NotServing),
        "the port opened before the Python component compiled, and said so: {:#?}",
        log()
    );

    let channel = tonic::transport::Channel::from_shared(uri.clone()).expect("uri").connect().await.expect("connect");
    let mut client = sse_wasm::pb::connector_client::ConnectorClient::new(channel.clone());
    let during_load = client.get_capabilities(sse_wasm::pb::Empty {}).await.expect("answered once loaded").into_inner();
    // The log (read from the child's stderr) may lag behind; the line is there or comes.
    eventually("the whole folder is logged as served", || async { position("serving ").is_some() }).await;
    assert!(
        position(&format!("loaded {}", functions.join("python_example.wasm").display())).is_some(),
        "GetCapabilities answered only after the last load: {:#?}",
        log()
    );
    let names: Vec<String> = during_load.functions.iter().map(|f| f.name.clone()).collect();
    assert!(names.contains(&"SumOfRows".to_owned()) && names.len() > 3, "the whole list: {names:?}");
    let again = client.get_capabilities(sse_wasm::pb::Empty {}).await.expect("capabilities").into_inner();
    assert_eq!(during_load.functions.len(), again.functions.len());

    // Waiting calls are let through only once health says SERVING: whoever saw the answer sees
    // SERVING too.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "qlik.sse.Connector"] {
        let request = HealthCheckRequest { service: service.into() };
        let status = health.check(request).await.expect("health").into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "health of {service:?} once GetCapabilities answered");
    }

    // Each load is logged when it starts and ends; the small one starts and ends first.
    let small = functions.join("column_operations.wasm").display().to_string();
    let large = functions.join("python_example.wasm").display().to_string();
    let at = |what: &str, file: &str| position(&format!("{what} {file} (")).unwrap_or_else(|| panic!("{what} {file}"));
    assert!(at("loading", &small) < at("loading", &large), "{:#?}", log());
    assert!(at("loaded", &small) < at("loaded", &large), "the small one is not kept waiting: {:#?}", log());
    // Its size as people read it (the build's exact size varies with the toolchain).
    let size = std::fs::metadata(functions.join("python_example.wasm")).expect("size").len() as f64;
    let size = format!("{:.1} MiB", size / f64::from(1 << 20));
    assert!(log().iter().any(|l| l.contains(&format!("loading {large} ({size})"))), "{:#?}", log());
    binary.child.kill().await.expect("kill");
}

/// Standard error on a pipe (a service manager, `make run 2>log`) gets plain lines, with no
/// terminal colour codes, even without NO_COLOR; Ctrl-C with no drain window (as `make run`
/// passes) stops the host at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_log_is_plain_and_ctrl_c_stops_a_local_run_at_once() {
    let root = tempfile::tempdir().expect("temp dir");
    let args = ["--no-compile-cache", "--no-watch", "--drain-delay", "0"];
    let mut binary = Binary::start(root.path(), &["column_operations"], &args, "info").await;
    let log = binary.log();
    eventually("the log says the folder is served", || async { log().iter().any(|l| l.contains("serving")) }).await;
    let _client = binary.client().await;
    let pid = binary.child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
    assert!(sent.success(), "SIGINT sent: {sent:?}");
    // Sooner than the default drain window (5 s) alone would allow.
    let status = tokio::time::timeout(Duration::from_secs(4), binary.child.wait())
        .await
        .expect("the host stops at once on Ctrl-C")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    eventually("the last line is read", || async { log().iter().any(|l| l.contains("stopped")) }).await;
    let lines = log();
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "no terminal colour codes on a pipe: {lines:#?}");
}

/// `--log-file`: the log is appended to the file (its folder made), not written to stderr; a
/// second start adds to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_goes_to_the_log_file_and_is_appended_to() {
    let root = tempfile::tempdir().expect("temp dir");
    let args = ["--no-compile-cache", "--no-watch", "--drain-delay", "0", "--log-file", "logs/host.log"];
    let read = || std::fs::read_to_string(root.path().join("logs/host.log")).unwrap_or_default();
    let mut binary = Binary::start(root.path(), &["column_operations"], &args, "info").await;
    eventually("the log file says the folder is served", || async { read().contains("serving 3 function(s)") }).await;
    binary.child.kill().await.expect("kill");
    let first = read();
    assert!(!first.contains('\u{1b}'), "no terminal colours in a file:\n{first}");
    let stderr = binary.log()();
    assert!(stderr.iter().all(|line| !line.contains("serving")), "nothing on stderr: {stderr:?}");

    std::fs::remove_dir_all(root.path().join("functions")).expect("rm");
    let mut again = Binary::start(root.path(), &["column_operations"], &args, "info").await;
    eventually("the second start is appended", || async { read().matches("serving 3 function(s)").count() == 2 }).await;
    again.child.kill().await.expect("kill");
    assert!(read().starts_with(&first), "appended, not overwritten");
}

//! Hot reload through the real gRPC interface: functions change with the folder, no call fails.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sse_wasm::pb;
use sse_wasm::wasm::Limits;
use tonic::Code;

use crate::util::{
    Binary, TestServer, append_section, assert_status, bundles, call, eventually, guest_bytes, instances_alive,
    numbers, replace_atomically,
};

const ONE: &str = "version_one";
const TWO: &str = "version_two";

/// The version `Version` answers now, or `None` when it is not served.
async fn version(server: &TestServer) -> Option<f64> {
    let mut client = server.client().await;
    match call(&mut client, "Version", bundles(numbers(&[0.0]), 1)).await {
        Ok(answer) => Some(answer.numbers()[0]),
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("unexpected failure: {status:?}"),
    }
}

async fn names(server: &TestServer) -> Vec<String> {
    let caps = server.client().await.get_capabilities(pb::Empty {}).await.expect("capabilities").into_inner();
    let mut names: Vec<String> = caps.functions.into_iter().map(|f| f.name).collect();
    names.sort();
    names
}

async fn serves(server: &TestServer, expected: Option<f64>) {
    eventually(&format!("Version answers {expected:?}"), || async { version(server).await == expected }).await;
}

async fn start_empty() -> TestServer {
    TestServer::start_in(tempfile::tempdir().expect("temp dir"), Limits::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_replace_in_every_way_and_delete() {
    let server = start_empty().await;
    let file = server.dir.path().join("versioned.wasm");
    assert_eq!(version(&server).await, None);

    std::fs::copy(crate::util::guest_wasm(ONE), &file).expect("copy");
    serves(&server, Some(1.0)).await;
    assert_eq!(names(&server).await, ["OnlyInOne", "Version", "VersionOfCall"]);

    // Written in place.
    std::fs::write(&file, guest_bytes(TWO)).expect("write");
    serves(&server, Some(2.0)).await;
    assert_eq!(names(&server).await, ["OnlyInTwo", "Version", "VersionOfCall"]);
    // A function that went away says so, by name.
    let mut client = server.client().await;
    assert_status(
        call(&mut client, "OnlyInOne", bundles(numbers(&[1.0]), 1)).await,
        Code::NotFound,
        &["OnlyInOne", "no longer loaded"],
    );

    // Copied over.
    std::fs::copy(crate::util::guest_wasm(ONE), &file).expect("copy");
    serves(&server, Some(1.0)).await;

    // Renamed into place.
    replace_atomically(&file, &guest_bytes(TWO));
    serves(&server, Some(2.0)).await;

    std::fs::remove_file(&file).expect("delete");
    serves(&server, None).await;
    assert!(names(&server).await.is_empty());
    assert_status(
        call(&mut client, "Version", bundles(numbers(&[1.0]), 1)).await,
        Code::NotFound,
        &["Version", "no longer loaded"],
    );
    assert_eq!(server.status.borrow().failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_file_keeps_its_functions_served() {
    let server = TestServer::start(&[ONE]).await;
    let from = server.dir.path().join(format!("{ONE}.wasm"));
    let to = server.dir.path().join("renamed.wasm");
    let generation = server.status.borrow().generation;
    std::fs::rename(&from, &to).expect("rename");
    let mut status = server.status.clone();
    eventually("the rename is picked up", || {
        let found = server.registry.load().guests().iter().any(|m| m.path == to);
        async move { found }
    })
    .await;
    // Both halves of the rename were applied together: one new registry, never a gap.
    assert_eq!(status.borrow_and_update().generation, generation + 1);
    assert_eq!(version(&server).await, Some(1.0));
    assert_eq!(server.registry.load().guests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_replacement_leaves_the_old_version_serving() {
    let server = TestServer::start(&[ONE]).await;
    let file = server.dir.path().join(format!("{ONE}.wasm"));
    replace_atomically(&file, b"\0asm\x0d\0\x01\0 truncated nonsense");
    let mut status = server.status.clone();
    tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.failures == 1))
        .await
        .expect("load attempted")
        .expect("status");
    assert_eq!(version(&server).await, Some(1.0));
    // A fixed file is picked up again.
    replace_atomically(&file, &guest_bytes(TWO));
    serves(&server, Some(2.0)).await;
}

/// A path that cannot be read (here a folder named like a component; on Windows, typically a
/// file its writer holds open) is tried again a few times, then reported once, and never stops
/// the rest serving; once it holds a component, that is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_cannot_be_read_is_tried_again_then_reported_once() {
    let server = TestServer::start(&[ONE]).await;
    let path = server.dir.path().join("stats.wasm");
    std::fs::create_dir(&path).expect("mkdir");
    let mut status = server.status.clone();
    tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| s.failures == 1 && s.idle))
        .await
        .expect("reported within the tries")
        .expect("status");
    assert_eq!(version(&server).await, Some(1.0), "the rest keeps serving");
    std::fs::remove_dir(&path).expect("rmdir");
    replace_atomically(&path, &guest_bytes("stats"));
    eventually("stats.wasm is served", || async { names(&server).await.iter().any(|n| n == "Median") }).await;
    assert_eq!(server.status.borrow().failures, 1, "reported once");
}

/// `bytes` with a custom section appended, making the file `size` bytes long or more.
fn padded(mut bytes: Vec<u8>, size: usize) -> Vec<u8> {
    let name = b"padding";
    let payload_len = size.saturating_sub(bytes.len());
    let mut custom = vec![name.len() as u8];
    custom.extend_from_slice(name);
    custom.resize(custom.len() + payload_len, 0xab);
    append_section(&mut bytes, 0, &custom);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowly_written_20_mb_file_is_loaded_once_whole() {
    let server = TestServer::start(&[ONE]).await;
    let file = server.dir.path().join(format!("{ONE}.wasm"));
    let big = padded(guest_bytes(TWO), 20 << 20);
    let before = *server.status.borrow();

    // A slow writer: 20 chunks with pauses longer than the settle time in between. The file is
    // incomplete (and not a loadable component) until the last chunk.
    let mut writer = std::fs::File::create(&file).expect("create");
    for chunk in big.chunks(big.len() / 20 + 1) {
        writer.write_all(chunk).expect("write");
        writer.flush().expect("flush");
        tokio::time::sleep(sse_wasm::functions::reload::SETTLE * 5).await;
        // Meanwhile the old version keeps answering.
        assert_eq!(version(&server).await, Some(1.0));
    }
    drop(writer);
    serves(&server, Some(2.0)).await;
    let mut status = server.status.clone();
    let after = *tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.idle))
        .await
        .expect("idle")
        .expect("status");
    assert_eq!(after.generation, before.generation + 1, "exactly one reload");
    assert_eq!(after.failures, before.failures, "the half-written file was never loaded");
}

/// Calls `Version` (five bundles) and `VersionOfCall` in a loop until `stop`; checks each call is
/// answered by one version only, and counts calls, failures and the versions seen.
async fn keep_calling(
    server: Arc<TestServer>,
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<f64>>>,
) -> Result<(), String> {
    let mut client = server.client().await;
    while !stop.load(Ordering::Relaxed) {
        let answer = call(&mut client, "Version", bundles(numbers(&[0.0; 50]), 10))
            .await
            .map_err(|s| format!("Version: {s:?}"))?;
        let versions = answer.numbers();
        if versions.len() != 50 || versions.iter().any(|&v| v != versions[0]) {
            return Err(format!("a call answered by a mix of versions: {versions:?}"));
        }
        let aggregate = call(&mut client, "VersionOfCall", bundles(numbers(&[0.0; 20]), 5))
            .await
            .map_err(|s| format!("VersionOfCall: {s:?}"))?;
        if aggregate.numbers().len() != 1 {
            return Err(format!("an aggregation answered {:?}", aggregate.numbers()));
        }
        seen.lock().unwrap().extend([versions[0], aggregate.numbers()[0]]);
        calls.fetch_add(2, Ordering::Relaxed);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_under_8_streaming_clients_fails_no_call() {
    let server = Arc::new(TestServer::start(&[ONE]).await);
    let file = server.dir.path().join(format!("{ONE}.wasm"));
    let (stop, calls, seen) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let clients: Vec<_> =
        (0..8).map(|_| tokio::spawn(keep_calling(server.clone(), stop.clone(), calls.clone(), seen.clone()))).collect();

    let (one, two) = (guest_bytes(ONE), guest_bytes(TWO));
    for round in 0..6 {
        let (bytes, expected) = if round % 2 == 0 { (&two, 2.0) } else { (&one, 1.0) };
        let calls_before = calls.load(Ordering::Relaxed);
        if round % 3 == 0 {
            replace_atomically(&file, bytes)
        } else {
            std::fs::write(&file, bytes).expect("write")
        }
        serves(&server, Some(expected)).await;
        // Let the clients run against this version for a while.
        eventually("clients keep calling", || {
            let calls = calls.clone();
            async move { calls.load(Ordering::Relaxed) >= calls_before + 40 }
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("join").expect("no call failed");
    }
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&1.0) && seen.contains(&2.0), "both versions answered");
    assert_eq!(server.status.borrow().failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_writes_ends_on_the_last_version() {
    let server = Arc::new(TestServer::start(&[ONE]).await);
    let file = server.dir.path().join(format!("{ONE}.wasm"));
    let (stop, calls, seen) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let client = tokio::spawn(keep_calling(server.clone(), stop.clone(), calls.clone(), seen.clone()));
    let (one, two) = (guest_bytes(ONE), guest_bytes(TWO));
    for i in 0..50 {
        std::fs::write(&file, if i % 2 == 0 { &one } else { &two }).expect("write");
    }
    serves(&server, Some(2.0)).await;
    let mut status = server.status.clone();
    tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.idle)).await.expect("idle").expect("status");
    assert_eq!(version(&server).await, Some(2.0));
    stop.store(true, Ordering::Relaxed);
    client.await.expect("join").expect("no call failed");
    assert_eq!(server.status.borrow().failures, 0);
}

/// The real host keeps an instance of the component its last calls were of, made while idle.
/// Once the replacement's functions are listed, no call is answered by such an instance of the
/// old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_is_never_answered_by_an_instance_made_ahead_of_it() {
    let root = tempfile::tempdir().expect("temp dir");
    let (binary, metrics) = Binary::with_metrics(root.path(), &[ONE]).await;
    let mut client = binary.client().await;
    let version = |client: &mut pb::connector_client::ConnectorClient<tonic::transport::Channel>| {
        let mut client = client.clone();
        async move { call(&mut client, "Version", bundles(numbers(&[0.0]), 1)).await.expect("Version").numbers()[0] }
    };
    for _ in 0..20 {
        assert_eq!(version(&mut client).await, 1.0);
    }
    // Calls at once reach every runtime thread, so each makes one ahead.
    let streams: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    assert_eq!(version(&mut client).await, 1.0);
                }
            })
        })
        .collect();
    for stream in streams {
        stream.await.expect("no stream failed");
    }
    eventually("an instance made ahead while idle", || async { instances_alive(metrics).await >= 1.0 }).await;

    replace_atomically(&binary.functions.join(format!("{ONE}.wasm")), &guest_bytes(TWO));
    let listed = |client: &pb::connector_client::ConnectorClient<tonic::transport::Channel>| {
        let mut client = client.clone();
        async move {
            let caps = client.get_capabilities(pb::Empty {}).await.expect("capabilities").into_inner();
            caps.functions.iter().any(|f| f.name == "OnlyInTwo")
        }
    };
    eventually("the replacement is listed", || listed(&client)).await;
    for i in 0..50 {
        assert_eq!(version(&mut client).await, 2.0, "call {i} after the replacement was listed");
    }
}

/// Two files declaring the same function: the file whose name sorts first serves it, whether it
/// was there at start-up or arrived later, so a reload and a restart agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contested_name_goes_to_the_same_file_after_a_reload_as_after_a_restart() {
    let server = start_empty().await;
    replace_atomically(&server.dir.path().join("b.wasm"), &guest_bytes(TWO));
    serves(&server, Some(2.0)).await;
    let generation = server.status.borrow().generation;
    replace_atomically(&server.dir.path().join("a.wasm"), &guest_bytes(ONE));
    let mut status = server.status.clone();
    tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.generation > generation && s.idle))
        .await
        .expect("a.wasm is loaded")
        .expect("status");
    assert_eq!(version(&server).await, Some(1.0), "a.wasm, first by name, serves Version after the reload");

    let copy = tempfile::tempdir().expect("temp dir");
    for file in ["a.wasm", "b.wasm"] {
        std::fs::copy(server.dir.path().join(file), copy.path().join(file)).expect("copy");
    }
    let restarted = TestServer::start_in(copy, Limits::default()).await;
    assert_eq!(version(&restarted).await, Some(1.0), "and after a restart");
}

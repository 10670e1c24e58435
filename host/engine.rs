//! The WebAssembly engine: compiling components, and the sandbox every call runs in — a fresh
//! store with no files, no network and no environment, a memory cap and a CPU deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::config::Limits;
use crate::error::CallError;
use crate::guest_log::{GuestOutput, LogRate};

/// How often the epoch advances; a runaway guest is noticed within one tick of its deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a recycled instance's memory is zeroed in place rather than handed back to the
/// kernel (whose page-table changes stall every thread of the host). SDK guests use a 256 KiB
/// stack, so a typical call touches less than this.
const KEEP_RESIDENT: usize = 512 << 10;

/// A call may spend this many times its CPU limit inside the guest by the wall clock, for guests
/// that sleep rather than compute (on a machine so busy that a computing guest gets less than a
/// quarter of a core, that guest is stopped by this too).
pub const WALL_FACTOR: u32 = 4;

/// Set when nobody waits for a call's answer any more, so a running guest stops at the next tick.
pub type CancelFlag = Arc<AtomicBool>;

/// Why the host stopped a guest from the epoch callback.
#[derive(Debug, thiserror::Error)]
enum Interrupted {
    #[error("CPU time limit reached")]
    Deadline,
    #[error("wall-clock backstop reached")]
    WallDeadline,
    #[error("call cancelled")]
    Cancelled,
}

/// Denies memory growth past the cap and remembers that it did, so the failure is reported as
/// exhausted memory rather than as whatever the guest did next (usually an abort).
struct MemoryCap {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_bytes;
        self.hit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one store: WASI's state and the sandbox's bookkeeping.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    /// The thread's CPU time and the wall clock when the running guest code was entered;
    /// `None` outside it.
    entered: Option<(Duration, Instant)>,
    /// CPU time the call may still spend in the guest.
    budget: Duration,
    /// Wall time the call may still spend in the guest: a backstop for guests that wait (sleep)
    /// instead of computing, which use no CPU.
    wall_budget: Duration,
    /// The whole call's CPU time limit, for messages.
    timeout: Duration,
    cancel: Option<CancelFlag>,
    stderr: GuestOutput,
}

impl CallState {
    /// Makes a store prepared ahead of its call (instantiated, nothing else run) the call's own:
    /// the call's cancel flag, the full CPU and wall budgets (instantiating is not the call's
    /// work).
    pub fn arm(&mut self, cancel: CancelFlag) {
        self.cancel = Some(cancel);
        self.budget = self.timeout;
        self.wall_budget = self.timeout.saturating_mul(WALL_FACTOR);
    }

    /// The memory cap's error, if the guest was refused memory during this call (a guest that
    /// handles the refusal itself, as Python does with `MemoryError`, still hit the cap).
    pub fn memory_exhausted(&self, function: &str) -> Option<CallError> {
        self.memory
            .hit
            .then(|| CallError::Memory { function: function.to_owned(), limit_mib: self.memory.max_bytes >> 20 })
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// One compiling engine shared by every module, and the limits of every store it makes.
#[derive(Clone)]
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Arc<Linker<CallState>>,
    limits: Limits,
    /// The rate limit all guests' output shares.
    log_rate: Arc<LogRate>,
}

impl Engine {
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
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Map data segments copy-on-write: an interpreter's pre-initialized heap (18 MB for the
        // Python engine) would otherwise be copied into every fresh instance, which each script
        // evaluation gets (measured: one-row ScriptAggr 13 ms at p50 copying, 6 ms mapping).
        config.memory_init_cow(true);
        let engine = wasmtime::Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;

        let weak = engine.weak();
        std::thread::Builder::new().name("sse-wasm-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        Ok(Self { engine, linker: Arc::new(linker), limits, log_rate: Arc::default() })
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The linker holding everything a guest may import (WASI without authority).
    pub fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles a component (Cranelift; seconds for large guests, so never on a request path).
    pub fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        Component::new(&self.engine, bytes)
    }

    /// A fresh store for one call into `module`: no preopened files, no sockets, no environment,
    /// no arguments; the memory cap and the call's CPU budget set. `cancel`, when set by the
    /// server, stops the guest within one epoch tick.
    pub fn store(&self, module: &Arc<str>, cancel: Option<CancelFlag>) -> Store<CallState> {
        let stderr = GuestOutput::new(module.clone(), "stderr", self.log_rate.clone());
        let wasi = WasiCtxBuilder::new()
            .stdout(GuestOutput::new(module.clone(), "stdout", self.log_rate.clone()))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap { max_bytes: self.limits.max_memory_bytes, hit: false },
            entered: None,
            budget: self.limits.call_timeout,
            wall_budget: self.limits.call_timeout.saturating_mul(WALL_FACTOR),
            timeout: self.limits.call_timeout,
            cancel,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            let state = context.data();
            if state.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Interrupted::Cancelled.into());
            }
            // The callback runs on the guest's own thread, so its CPU clock is the guest's.
            if let Some((cpu, wall)) = state.entered {
                if thread_cpu().saturating_sub(cpu) >= state.budget {
                    return Err(Interrupted::Deadline.into());
                }
                if wall.elapsed() >= state.wall_budget {
                    return Err(Interrupted::WallDeadline.into());
                }
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store
    }
}

/// Runs `f` (one entry into the guest) against the call's remaining CPU budget, and turns a
/// failure into the [`CallError`] that names `function` and says what happened.
///
/// The budget is CPU time of the calling thread, which runs the guest and nothing else meanwhile:
/// a busy machine does not make a call fail, and time spent waiting for the client between
/// batches does not count.
pub fn guarded<R>(
    store: &mut Store<CallState>,
    function: &str,
    f: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
) -> Result<R, CallError> {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    store.data_mut().entered = Some((cpu, wall));
    let result = f(store);
    let state = store.data_mut();
    state.entered = None;
    state.budget = state.budget.saturating_sub(thread_cpu().saturating_sub(cpu));
    state.wall_budget = state.wall_budget.saturating_sub(wall.elapsed());
    result.map_err(|error| classify(store, function, error))
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    ThreadTime::now().as_duration()
}

/// Names what made a guest call fail, by the error's type, never its text.
fn classify(store: &Store<CallState>, function: &str, error: wasmtime::Error) -> CallError {
    let state = store.data();
    let function = function.to_owned();
    if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
        return match interrupted {
            Interrupted::Cancelled => CallError::Cancelled,
            Interrupted::Deadline => CallError::Deadline { function, seconds: state.timeout.as_secs_f64() },
            Interrupted::WallDeadline => {
                CallError::Waited { function, seconds: state.timeout.as_secs_f64() * f64::from(WALL_FACTOR) }
            }
        };
    }
    if error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        return CallError::PoolExhausted { function, detail: format!("{error:#}") };
    }
    if state.memory.hit {
        return CallError::Memory { function, limit_mib: state.memory.max_bytes >> 20 };
    }
    let last_words = state.stderr.last_words();
    let trap = match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "stack overflow".to_owned(),
        Some(Trap::UnreachableCodeReached) if !last_words.is_empty() => format!("guest panicked: {last_words}"),
        Some(trap) => format!("trap: {trap}"),
        None => format!("{error:#}"),
    };
    CallError::Trap { function, trap }
}

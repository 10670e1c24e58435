//! The sandbox of one call: the state of its store (WASI without authority, the memory cap, the
//! CPU and wall-clock budgets, the cancel flag, the guest's output), the epoch check that stops a
//! guest, and the classification of how a guest call failed.
//!
//! Depends on `clock`, `guest_log`, `model_door` and the error types only; `runtime` makes the
//! stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::CallError;

use super::clock::CpuSince;
use super::guest_log::GuestOutput;
use super::model_door::ModelDoor;

/// A call may spend this many times its CPU limit inside the guest by the wall clock, for guests
/// that sleep rather than compute (on a machine so busy that a computing guest gets less than a
/// quarter of a core, that guest is stopped by this too).
pub const WALL_FACTOR: u32 = 4;

/// Set when nobody waits for a call's answer any more, so a running guest stops at the next tick.
pub type CancelFlag = Arc<AtomicBool>;

/// CPU time an inline call (one run on the thread that took its request in) may spend before it
/// gives that thread back; checked at the epoch ticks.
pub const INLINE_CPU: Duration = Duration::from_millis(1);

/// Wall-clock time an inline call may take (its thread may be preempted).
pub const INLINE_WALL: Duration = Duration::from_millis(5);

/// What may stop a call before its own deadline: the client going away and, for an inline call,
/// the time it may spend on the thread that took its request in.
#[derive(Clone, Debug, Default)]
pub struct CallControl {
    /// Set when nobody waits for the answer any more.
    pub cancel: CancelFlag,
    /// An inline call: past [`INLINE_CPU`] or [`INLINE_WALL`] it fails with
    /// [`CallError::OutgrewInline`] at the next epoch tick, and runs again on a call thread.
    pub inline: bool,
}

impl CallControl {
    /// A call on a call thread of its own, stopped by `cancel`.
    pub fn threaded(cancel: CancelFlag) -> Self {
        Self { cancel, inline: false }
    }
}

/// Why the host stopped a guest from the epoch callback.
#[derive(Debug, thiserror::Error)]
enum Interrupted {
    #[error("CPU time limit reached")]
    Deadline,
    #[error("wall-clock backstop reached")]
    WallDeadline,
    #[error("call cancelled")]
    Cancelled,
    #[error("inline call outgrew its thread")]
    OutgrewInline,
}

/// Denies memory growth past the cap and remembers that it did, so the failure is reported as
/// exhausted memory rather than as whatever the guest did next (usually an abort). The cap is
/// the instance's: all its linear memories together (a component may hold several).
struct MemoryCap {
    max_bytes: usize,
    hit: bool,
    /// Linear memory granted to the store's memories together (instantiation counts as growing
    /// each from nothing).
    total: usize,
    /// The most `total` has been.
    peak: usize,
}

impl MemoryCap {
    fn new(max_bytes: usize) -> Self {
        Self { max_bytes, hit: false, total: 0, peak: 0 }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        let allowed = total <= self.max_bytes;
        self.hit |= !allowed;
        if allowed {
            self.total = total;
            self.peak = self.peak.max(total);
        }
        // A growth granted here that the engine then fails still counts: wasmtime reports
        // failures without saying which request failed (also ones it never asked about), so
        // undoing "the last grant" could undo one that succeeded. Counting it errs on the side
        // of the cap.
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
    /// The CPU time the running guest code has used since it was entered; `None` outside it.
    entered: Option<CpuSince>,
    /// CPU time the call may still spend in the guest.
    budget: Duration,
    /// Wall time the call may still spend in the guest: a backstop for guests that wait (sleep)
    /// instead of computing, which use no CPU.
    wall_budget: Duration,
    /// The whole call's CPU time limit, for messages.
    timeout: Duration,
    cancel: Option<CancelFlag>,
    /// For an inline call: the CPU time it has used since it started.
    inline_since: Option<CpuSince>,
    stderr: GuestOutput,
    /// The calling app's way to the model store (`qlik:sse/models`).
    pub(in crate::wasm) models: ModelDoor,
    /// Stores alive, for the metrics: one while this one lives.
    live: Gauge,
    /// Where its peak linear memory is counted when it ends.
    peak_memory: Histogram,
}

impl Drop for CallState {
    fn drop(&mut self) {
        self.live.dec();
        self.peak_memory.observe(self.memory.peak as f64);
    }
}

impl CallState {
    /// The state of a fresh store: `wasi` for its context, `max_memory_bytes` of linear memory,
    /// `timeout` of CPU time (and `WALL_FACTOR` times that of wall time) in the guest.
    pub(in crate::wasm) fn new(
        wasi: WasiCtx,
        stderr: GuestOutput,
        max_memory_bytes: usize,
        timeout: Duration,
        cancel: Option<CancelFlag>,
        live: Gauge,
        peak_memory: Histogram,
    ) -> Self {
        live.inc();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(max_memory_bytes),
            entered: None,
            budget: timeout,
            wall_budget: timeout.saturating_mul(WALL_FACTOR),
            timeout,
            cancel,
            inline_since: None,
            stderr,
            models: ModelDoor::default(),
            live,
            peak_memory,
        }
    }

    /// Applies `control` to a fresh store: the call's cancel flag, and its inline time limit.
    pub(in crate::wasm) fn control(&mut self, control: &CallControl) {
        self.cancel = Some(control.cancel.clone());
        self.inline_since = control.inline.then(CpuSince::start);
    }

    /// Makes a store prepared ahead of its call (instantiated, nothing else run) the call's own:
    /// the call's cancel flag, the full CPU and wall budgets (instantiating is not the call's
    /// work).
    pub fn arm(&mut self, cancel: CancelFlag) {
        self.cancel = Some(cancel);
        self.budget = self.timeout;
        self.wall_budget = self.timeout.saturating_mul(WALL_FACTOR);
    }

    /// Fails an inline call with the error that moves it to a call thread, for a host function
    /// that may block (the model store's).
    pub(in crate::wasm) fn leave_inline(&self) -> wasmtime::Result<()> {
        match self.inline_since {
            Some(_) => Err(Interrupted::OutgrewInline.into()),
            None => Ok(()),
        }
    }

    /// The last lines the guest wrote to stderr.
    pub fn last_words(&self) -> String {
        self.stderr.last_words()
    }

    /// The memory cap's error, if the guest was refused memory during this call (a guest that
    /// handles the refusal itself, as Python does with `MemoryError`, still hit the cap).
    pub fn memory_exhausted(&self, function: &str) -> Option<CallError> {
        self.memory
            .hit
            .then(|| CallError::Memory { function: function.to_owned(), limit_mib: self.memory.max_bytes >> 20 })
    }
}

/// A store's data that carries a [`CallState`]: the sandbox's rules apply to every such store
/// (components' stores hold a `CallState` alone; the data-science engine's add WASI preview 1
/// and the data crossing its door).
pub trait Sandboxed: Send + 'static {
    /// The sandbox's state.
    fn call_state(&self) -> &CallState;
    /// The sandbox's state, to change.
    fn call_state_mut(&mut self) -> &mut CallState;
}

impl Sandboxed for CallState {
    fn call_state(&self) -> &CallState {
        self
    }
    fn call_state_mut(&mut self) -> &mut CallState {
        self
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Applies the sandbox to a fresh store: the memory cap, and the epoch check that stops the guest
/// at its deadline or when the call is cancelled, within one epoch tick.
pub(in crate::wasm) fn enforce<T: Sandboxed>(store: &mut Store<T>) {
    store.limiter(|state| &mut state.call_state_mut().memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut().call_state_mut();
        if state.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Interrupted::Cancelled.into());
        }
        // The callback runs on the guest's own thread, so its CPU clock is the guest's.
        if let Some(since) = state.inline_since.as_mut()
            && (since.at_tick() >= INLINE_CPU || since.wall.elapsed() >= INLINE_WALL)
        {
            return Err(Interrupted::OutgrewInline.into());
        }
        if let Some(since) = state.entered.as_mut() {
            if since.at_tick() >= state.budget {
                return Err(Interrupted::Deadline.into());
            }
            if since.wall.elapsed() >= state.wall_budget {
                return Err(Interrupted::WallDeadline.into());
            }
        }
        Ok(UpdateDeadline::Continue(1))
    });
}

/// Runs `f` (one entry into the guest) against the call's remaining CPU budget, and turns a
/// failure into the [`CallError`] that names `function` and says what happened.
///
/// The budget is CPU time of the calling thread, which runs the guest and nothing else meanwhile:
/// a busy machine does not make a call fail, and time spent waiting for the client between
/// batches does not count.
pub fn enter<T: Sandboxed, R>(
    store: &mut Store<T>,
    function: &str,
    f: impl FnOnce(&mut Store<T>) -> wasmtime::Result<R>,
) -> Result<R, CallError> {
    store.data_mut().call_state_mut().entered = Some(CpuSince::start());
    let result = f(store);
    let state = store.data_mut().call_state_mut();
    if let Some(since) = state.entered.take() {
        state.budget = state.budget.saturating_sub(since.used());
        state.wall_budget = state.wall_budget.saturating_sub(since.wall.elapsed());
    }
    result.map_err(|error| classify(store, function, error))
}

/// Names what made a guest call fail, by the error's type, never its text.
fn classify<T: Sandboxed>(store: &Store<T>, function: &str, error: wasmtime::Error) -> CallError {
    let state = store.data().call_state();
    let function = function.to_owned();
    if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
        return match interrupted {
            Interrupted::Cancelled => CallError::Cancelled,
            Interrupted::OutgrewInline => CallError::OutgrewInline,
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
        // A guest's own stack lives in its memory, below its data: running out of it takes the
        // stack pointer below address 0, and the next access traps as out of bounds.
        Some(Trap::MemoryOutOfBounds) => {
            "trap: out of bounds memory access (or a stack overflow: the guest's stack, sized when it \
             was built, ran out)"
                .to_owned()
        }
        Some(Trap::UnreachableCodeReached) if !last_words.is_empty() => format!("guest panicked: {last_words}"),
        Some(trap) => format!("trap: {trap}"),
        None => format!("{error:#}"),
    };
    CallError::Trap { function, trap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cap_covers_every_memory_of_the_instance() {
        const MIB: usize = 1 << 20;
        let mut cap = MemoryCap::new(10 * MIB);
        // Instantiation: two memories of 4 MiB each, counted as growing from nothing.
        assert!(cap.memory_growing(0, 4 * MIB, None).expect("asked"));
        assert!(cap.memory_growing(0, 4 * MIB, None).expect("asked"));
        // The first grows by 2 MiB (10 in all), then by 1 more: past the cap, though that memory
        // alone would hold 7 MiB.
        assert!(cap.memory_growing(4 * MIB, 6 * MIB, None).expect("asked"));
        assert!(!cap.memory_growing(6 * MIB, 7 * MIB, None).expect("asked"));
        assert!(cap.hit);
        assert_eq!((cap.total, cap.peak), (10 * MIB, 10 * MIB));
        // A failure wasmtime reports without asking first (a growth past the memory type's own
        // maximum) undoes nothing: the first memory's 8 MiB stand, so the second may not grow
        // by 7 MiB (together 17 under a cap of 10).
        let mut cap = MemoryCap::new(10 * MIB);
        assert!(cap.memory_growing(0, MIB, None).expect("asked"));
        assert!(cap.memory_growing(0, MIB, None).expect("asked"));
        assert!(cap.memory_growing(MIB, 9 * MIB, None).expect("asked"));
        cap.memory_grow_failed(wasmtime::format_err!("memory growth exceeds memory type's limits")).expect("taken");
        assert!(!cap.memory_growing(MIB, 8 * MIB, None).expect("asked"), "17 MiB in all");
        assert_eq!(cap.total, 10 * MIB);
    }
}

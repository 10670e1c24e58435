//! Instances made ahead, in the async runtime's idle moments: an inline call takes a fresh
//! instance its thread made while it had nothing else to do, and leaves its used store to be
//! dropped there too, so neither instantiating nor resetting the pooled slot sits between a
//! small request and its answer.
//!
//! Everything here belongs to one thread (the runtime's worker that runs inline calls): an
//! instance is made, taken and dropped on the thread whose caches it warms. An instance made
//! ahead has run nothing but the component's instantiation, under an inline call's limits; a
//! call takes it whole or not at all, and never shares it: isolation is that of a fresh instance.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use wasmtime::Store;
use wasmtime::component::Instance;

use crate::wasm::runtime::sandbox::CallState;
use crate::wasm::runtime::{Runtime, SLOTS_KEPT_PER_THREAD};

/// What instances are made ahead of: a loaded guest.
pub(in crate::wasm) trait MakeAhead: Send + Sync {
    /// A fresh instance for a later inline call, or `None` when none can be made now.
    fn make_ahead(&self, runtime: &Runtime) -> Option<(Store<CallState>, Instance)>;
}

/// A guest as this module keeps it: weakly, so that one a reload removed is not kept alive.
type Maker = Weak<dyn MakeAhead>;

/// True when `maker` is `guest`.
fn is(maker: &Maker, guest: &Arc<impl MakeAhead + 'static>) -> bool {
    std::ptr::addr_eq(maker.as_ptr(), Arc::as_ptr(guest))
}

/// Used stores a thread keeps to drop while idle (the pool leaves room for them and the
/// instance made ahead); past this many it drops the oldest at once (a busy thread, never idle,
/// then pays as it did before).
const MAX_SPENT: usize = SLOTS_KEPT_PER_THREAD - 1;

thread_local! {
    static AHEAD: RefCell<Ahead> = RefCell::new(Ahead::default());
}

/// What one thread keeps for its next inline call.
#[derive(Default)]
struct Ahead {
    /// True on a thread that runs [`idle`] when it has nothing to do (the serving runtime's
    /// threads, from their first idle moment until they stop): only such a thread keeps anything.
    hooked: bool,
    /// The guest of this thread's last inline call: the one to make an instance of when idle.
    expected: Option<(Runtime, Maker)>,
    /// True when the last two inline calls were of the same guest. Only then is an instance made
    /// ahead: calls that take turns between guests would leave each one made for another unused.
    repeated: bool,
    /// A fresh instance of a guest, made while idle and never entered since.
    ready: Option<(Maker, Store<CallState>, Instance)>,
    /// Stores of inline calls that have ended, to drop while idle.
    spent: Vec<Store<CallState>>,
}

/// The instance made ahead on this thread for `guest`, if there is one; either way, `guest` is
/// what this thread makes an instance of when it is next idle, if its next call is of `guest`
/// too.
pub(in crate::wasm) fn take<G: MakeAhead + 'static>(
    runtime: &Runtime,
    guest: &Arc<G>,
) -> Option<(Store<CallState>, Instance)> {
    AHEAD.with(|ahead| {
        let mut ahead = ahead.try_borrow_mut().ok().filter(|ahead| ahead.hooked)?;
        ahead.repeated = ahead.expected.as_ref().is_some_and(|(_, expected)| is(expected, guest));
        if !ahead.repeated {
            let maker: Arc<dyn MakeAhead> = guest.clone();
            ahead.expected = Some((runtime.clone(), Arc::downgrade(&maker)));
        }
        match ahead.ready.take() {
            Some((made_for, store, instance)) if is(&made_for, guest) => Some((store, instance)),
            // Made for a guest this thread no longer calls: dropped when idle.
            Some((_, store, _)) => {
                ahead.spent.push(store);
                None
            }
            None => None,
        }
    })
}

/// Leaves a call's used store to be dropped when this thread is idle; a thread that keeps
/// nothing (a call thread) drops it at once.
pub(in crate::wasm) fn retire(store: Store<CallState>) {
    let unkept = AHEAD.with(|ahead| match ahead.try_borrow_mut() {
        Ok(mut ahead) if ahead.hooked => {
            ahead.spent.push(store);
            (ahead.spent.len() > MAX_SPENT).then(|| ahead.spent.remove(0))
        }
        _ => Some(store),
    });
    drop(unkept);
}

/// Drops what this thread keeps, as it stops (before its thread-locals are torn down, which
/// stores must not outlive), and keeps nothing from then on.
pub fn clear() {
    drop(AHEAD.with(|ahead| ahead.try_borrow_mut().map(|mut ahead| std::mem::take(&mut *ahead)).ok()));
}

/// Drops the instance and stores this thread keeps; true if there were any (a full pool may
/// then have room).
pub(in crate::wasm) fn release() -> bool {
    let kept = AHEAD.with(|ahead| {
        let mut ahead = ahead.try_borrow_mut().ok()?;
        Some((ahead.ready.take(), std::mem::take(&mut ahead.spent)))
    });
    kept.is_some_and(|(ready, spent)| ready.is_some() || !spent.is_empty())
}

/// What a runtime thread does as it is about to go idle: drops the stores of the inline calls
/// that ended (and an instance made for a guest since removed), and makes an instance of the
/// guest its last two calls were of, ready for the next call.
pub fn idle() {
    let (mut spent, expected) = AHEAD.with(|ahead| {
        let Ok(mut ahead) = ahead.try_borrow_mut() else { return (Vec::new(), None) };
        ahead.hooked = true;
        let mut spent = std::mem::take(&mut ahead.spent);
        if ahead.ready.as_ref().is_some_and(|(guest, _, _)| guest.strong_count() == 0)
            && let Some((_, store, _)) = ahead.ready.take()
        {
            spent.push(store);
        }
        let wanted = match (&ahead.ready, &ahead.expected) {
            (None, Some((runtime, guest))) if ahead.repeated => guest.upgrade().map(|guest| (runtime.clone(), guest)),
            _ => None,
        };
        (spent, wanted)
    });
    spent.clear();
    if let Some((runtime, guest)) = expected
        && let Some((store, instance)) = guest.make_ahead(&runtime)
    {
        AHEAD.with(|ahead| {
            if let Ok(mut ahead) = ahead.try_borrow_mut() {
                ahead.ready = Some((Arc::downgrade(&guest), store, instance));
            }
        });
    }
}
